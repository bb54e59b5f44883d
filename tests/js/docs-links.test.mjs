// Every relative link in README.md, BENCHMARKS.md and docs/*.md resolves to a file of the repo
// (and an `#anchor` to a heading of that file), and no doc names a file the repo does not have
// as if it were there (DESIGN.md / WIRE.md live outside the repo, in the brief).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../lib/harness.mjs";

const docs = ["README.md", "BENCHMARKS.md", ...fs.readdirSync(path.join(ROOT, "docs"))
  .filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(file) {
  const text = fs.readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6} +(.+)$/gm)].map(([, h]) =>
    h.trim().toLowerCase().replace(/[`*_]/g, "").replace(/[^\p{L}\p{N} -]/gu, "").replace(/ /g, "-")));
}

test("relative links in the docs resolve", () => {
  const broken = [];
  for (const doc of docs) {
    const file = path.join(ROOT, doc);
    const text = fs.readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target)) continue; // http:, https:, mailto:
      const [p, anchor] = target.split("#");
      const dest = p ? path.resolve(path.dirname(file), p) : file;
      if (!fs.existsSync(dest)) { broken.push(`${doc}: ${target} (no such file)`); continue; }
      if (anchor && dest.endsWith(".md") && !anchors(dest).has(anchor)) broken.push(`${doc}: ${target} (no such heading)`);
    }
  }
  assert.deepEqual(broken, []);
});

test("no doc cites the brief's files as if they were in the repo", () => {
  for (const doc of docs) {
    const text = fs.readFileSync(path.join(ROOT, doc), "utf8");
    assert.doesNotMatch(text, /\b(DESIGN|WIRE)\.md\b/, doc);
  }
});
