//! The msgpack dialect of notepack.io 3, the codec of `@socket.io/redis-adapter` and
//! `@socket.io/redis-emitter`.
//!
//! Why not plain rmpv/rmp-serde: the Node side gives some ext types a meaning (type 0 is an
//! ArrayBuffer, fixext1 type 0 is `undefined`, type -1 a Date, and `d7 00` an old-style Date),
//! and to be byte-identical with Node peers the encoder must make notepack's exact choices
//! (integral numbers always as the smallest int, other numbers as float64, str8 for 32..255
//! bytes). The dynamic value type is [`rmpv::Value`] with these conventions:
//!
//! | Node (JS) | `rmpv::Value` |
//! |---|---|
//! | `null`, `undefined` | `Nil` |
//! | number | `Integer` when integral, else `F64` |
//! | `Buffer`, `ArrayBuffer`, typed array | `Binary` |
//! | `Date` | `Ext(-1, timestamp bytes)` (see [`timestamp_millis`]) |
//! | other ext `[type, Buffer]` | `Ext(type, bytes)` |
//!
//! Decoding never panics: every length is checked against the remaining input and nesting is
//! bounded by [`MAX_DEPTH`].

use rmpv::{Integer, Utf8String, Value};

use crate::error::{Result, WireError};

/// Deepest array/map nesting accepted by [`decode`] (the same bound serde_json uses).
pub const MAX_DEPTH: usize = 128;

/// Encode `value` as notepack.io 3 would, appending to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                write_uint(out, u)
            } else if let Some(n) = i.as_i64() {
                write_int(out, n)
            }
        }
        Value::F32(f) => write_number(out, f64::from(*f)),
        Value::F64(f) => write_number(out, *f),
        Value::String(s) => write_str_bytes(out, s.as_bytes()),
        Value::Binary(b) => write_bin(out, b),
        Value::Array(items) => {
            write_array_len(out, items.len());
            for item in items {
                encode_into(item, out);
            }
        }
        Value::Map(entries) => {
            write_map_len(out, entries.len());
            for (k, v) in entries {
                encode_into(k, out);
                encode_into(v, out);
            }
        }
        Value::Ext(ty, data) => write_ext(out, *ty, data),
    }
}

/// Encode `value` into a new buffer (see [`encode_into`]).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Write a JS number: integral finite values take the smallest int format (as notepack does,
/// `1.0` and `-0.0` are ints), everything else float64.
pub fn write_number(out: &mut Vec<u8>, f: f64) {
    // 2^64 bounds: beyond them notepack's own int path overflows; float64 is the honest choice.
    if f.is_finite()
        && f.floor() == f
        && f > -9.223_372_036_854_776e18
        && f < 1.844_674_407_370_955_2e19
    {
        if f >= 0.0 {
            write_uint(out, f as u64);
        } else {
            write_int(out, f as i64);
        }
    } else {
        out.push(0xcb);
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// Write a non-negative integer in the smallest format (positive fixint, uint8/16/32/64).
pub fn write_uint(out: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u < 0x100 {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u < 0x1_0000 {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u < 0x1_0000_0000 {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// Write an integer in the smallest format; non-negative values use the uint formats.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        write_uint(out, n as u64);
    } else if n >= -0x20 {
        out.push(n as u8);
    } else if n >= -0x80 {
        out.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -0x8000 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -0x8000_0000 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Write a string (fixstr, str8, str16, str32 by byte length).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_str_bytes(out, s.as_bytes())
}

fn write_str_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len();
    if len < 0x20 {
        out.push(0xa0 | len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len < 0x1_0000 {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Write binary data (bin8/16/32), as notepack writes a Node `Buffer`.
pub fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len();
    if len < 0x100 {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len < 0x1_0000 {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Write an array header for `len` elements.
pub fn write_array_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x10 {
        out.push(0x90 | len as u8);
    } else if len < 0x1_0000 {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Write a map header for `len` entries.
pub fn write_map_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x10 {
        out.push(0x80 | len as u8);
    } else if len < 0x1_0000 {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Write an ext value; fixext when the length allows (this is how notepack writes Dates).
pub fn write_ext(out: &mut Vec<u8>, ty: i8, data: &[u8]) {
    let len = data.len();
    match len {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        _ if len < 0x100 => out.extend_from_slice(&[0xc7, len as u8]),
        _ if len < 0x1_0000 => {
            out.push(0xc8);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0xc9);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.push(ty as u8);
    out.extend_from_slice(data);
}

/// Decode one complete msgpack value (trailing bytes are an error, as in notepack).
pub fn decode(buf: &[u8]) -> Result<Value> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    if r.pos != buf.len() {
        return Err(WireError::TrailingBytes(buf.len() - r.pos));
    }
    Ok(v)
}

/// A cursor over msgpack bytes. Besides [`decode`], the broadcast decoder uses it to read the
/// message envelope in place (borrowed keys, no value tree) and only builds values for the data.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// True when every byte was consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An array header, consumed only if the next value is an array.
    pub(crate) fn array_len(&mut self) -> Option<usize> {
        let save = self.pos;
        let n = match self.u8().ok()? {
            m @ 0x90..=0x9f => Some((m & 0x0f) as usize),
            0xdc => self.len16().ok(),
            0xdd => self.len32().ok(),
            _ => None,
        };
        if n.is_none() {
            self.pos = save;
        }
        n
    }

    /// A map header, consumed only if the next value is a map.
    pub(crate) fn map_len(&mut self) -> Option<usize> {
        let save = self.pos;
        let n = match self.u8().ok()? {
            m @ 0x80..=0x8f => Some((m & 0x0f) as usize),
            0xde => self.len16().ok(),
            0xdf => self.len32().ok(),
            _ => None,
        };
        if n.is_none() {
            self.pos = save;
        }
        n
    }

    /// A borrowed UTF-8 string, consumed only if the next value is one.
    pub(crate) fn str_ref(&mut self) -> Option<&'a str> {
        let save = self.pos;
        let len = match self.u8().ok()? {
            m @ 0xa0..=0xbf => Some((m & 0x1f) as usize),
            0xd9 => self.u8().ok().map(usize::from),
            0xda => self.len16().ok(),
            0xdb => self.len32().ok(),
            _ => None,
        };
        let s = len
            .and_then(|n| self.take(n).ok())
            .and_then(|b| std::str::from_utf8(b).ok());
        if s.is_none() {
            self.pos = save;
        }
        s
    }

    /// Any value, as a tree (see [`decode`]).
    pub(crate) fn any(&mut self, depth: usize) -> Result<Value> {
        self.value(depth)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError::UnexpectedEof(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn len16(&mut self) -> Result<usize> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::from(m),
            0x80..=0x8f => self.map((m & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((m & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.str((m & 0x1f) as usize)?,
            0xe0..=0xff => Value::from(m as i8),
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 => {
                let n = self.u8()? as usize;
                self.bin(n)?
            }
            0xc5 => {
                let n = self.len16()?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.len32()?;
                self.bin(n)?
            }
            0xc7 => {
                let n = self.u8()? as usize;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Value::F64(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Value::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Value::from(self.u8()?),
            0xcd => Value::from(u16::from_be_bytes(self.be()?)),
            0xce => Value::from(u32::from_be_bytes(self.be()?)),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::from(i8::from_be_bytes(self.be()?)),
            0xd1 => Value::from(i16::from_be_bytes(self.be()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.be()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.be()?)),
            0xd4 => self.fixext(1)?,
            0xd5 => self.fixext(2)?,
            0xd6 => self.fixext(4)?,
            0xd7 => self.fixext(8)?,
            0xd8 => self.fixext(16)?,
            0xd9 => {
                let n = self.u8()? as usize;
                self.str(n)?
            }
            0xda => {
                let n = self.len16()?;
                self.str(n)?
            }
            0xdb => {
                let n = self.len32()?;
                self.str(n)?
            }
            0xdc => {
                let n = self.len16()?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            0xc1 => {
                return Err(WireError::InvalidMarker {
                    marker: m,
                    offset: at,
                });
            }
        })
    }

    fn str(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        // JS decodes invalid UTF-8 with replacement characters; do the same rather than fail.
        let s = match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(b).into_owned(),
        };
        Ok(Value::String(Utf8String::from(s)))
    }

    fn bin(&mut self, n: usize) -> Result<Value> {
        Ok(Value::Binary(self.take(n)?.to_vec()))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return Err(WireError::TooDeep(MAX_DEPTH));
        }
        // Every element takes at least one byte: never trust a header for the allocation.
        let mut items = Vec::with_capacity(n.min(self.remaining()));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return Err(WireError::TooDeep(MAX_DEPTH));
        }
        let mut entries = Vec::with_capacity(n.min(self.remaining() / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    /// ext8/16/32: type 0 is notepack's ArrayBuffer encoding, -1 a timestamp.
    fn ext(&mut self, n: usize) -> Result<Value> {
        let ty = self.u8()? as i8;
        let data = self.take(n)?;
        Ok(match ty {
            0 => Value::Binary(data.to_vec()),
            _ => Value::Ext(ty, data.to_vec()),
        })
    }

    fn fixext(&mut self, n: usize) -> Result<Value> {
        let ty = self.u8()? as i8;
        let data = self.take(n)?;
        Ok(match (ty, n) {
            // notepack 2's `undefined`.
            (0, 1) => Value::Nil,
            // notepack 2's Date: milliseconds as a signed 64-bit number (hi int32, lo uint32).
            (0, 8) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(data);
                date_value(i64::from_be_bytes(a))
            }
            _ => Value::Ext(ty, data.to_vec()),
        })
    }
}

/// The `Ext(-1, ...)` value notepack 3 would write for a `Date` of `ms` milliseconds.
pub fn date_value(ms: i64) -> Value {
    let s = ms.div_euclid(1000);
    let ns = (ms.rem_euclid(1000) * 1_000_000) as u32;
    let data = if (0..=0x3_ffff_ffff).contains(&s) {
        if ns == 0 && s <= 0xffff_ffff {
            (s as u32).to_be_bytes().to_vec()
        } else {
            (((ns as u64) << 34) | s as u64).to_be_bytes().to_vec()
        }
    } else {
        let mut d = Vec::with_capacity(12);
        d.extend_from_slice(&ns.to_be_bytes());
        d.extend_from_slice(&s.to_be_bytes());
        d
    };
    Value::Ext(-1, data)
}

/// Milliseconds since the epoch of a msgpack timestamp extension payload (type -1), if valid.
pub fn timestamp_millis(data: &[u8]) -> Option<i64> {
    match data.len() {
        4 => Some(i64::from(u32::from_be_bytes(data.try_into().ok()?)) * 1000),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            let ns = (v >> 34) as i64;
            let s = (v & 0x3_ffff_ffff) as i64;
            Some(s * 1000 + ns / 1_000_000)
        }
        12 => {
            let ns = i64::from(u32::from_be_bytes(data[0..4].try_into().ok()?));
            let s = i64::from_be_bytes(data[4..12].try_into().ok()?);
            s.checked_mul(1000)?.checked_add(ns / 1_000_000)
        }
        _ => None,
    }
}

/// A JS number's integer value as `rmpv::Integer` when it is integral (for callers that
/// normalise numbers the way JS sees them).
pub fn integral(f: f64) -> Option<Integer> {
    if f.is_finite() && f.floor() == f && f.abs() < 9.007_199_254_740_992e15 {
        Some(Integer::from(f as i64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn smallest_formats_like_notepack() {
        assert_eq!(hex(&encode(&Value::from(127))), "7f");
        assert_eq!(hex(&encode(&Value::from(128))), "cc80");
        assert_eq!(hex(&encode(&Value::from(-32))), "e0");
        assert_eq!(hex(&encode(&Value::from(-33))), "d0df");
        assert_eq!(hex(&encode(&Value::from(65536))), "ce00010000");
        assert_eq!(hex(&encode(&Value::F64(1.0))), "01");
        assert_eq!(hex(&encode(&Value::F64(-0.0))), "00");
        assert_eq!(hex(&encode(&Value::F64(1.5))), "cb3ff8000000000000");
        assert_eq!(hex(&encode(&Value::from("a".repeat(32)))).len(), 4 + 64);
        assert!(hex(&encode(&Value::from("a".repeat(32)))).starts_with("d920"));
    }

    #[test]
    fn undefined_arraybuffer_and_dates() {
        assert_eq!(decode(&[0xd4, 0, 0]).unwrap(), Value::Nil);
        assert_eq!(
            decode(&[0xc7, 2, 0, 1, 2]).unwrap(),
            Value::Binary(vec![1, 2])
        );
        let old = decode(&[0xd7, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
        assert_eq!(old, date_value(1000));
        assert_eq!(old, Value::Ext(-1, vec![0, 0, 0, 1]));
        if let Value::Ext(-1, d) = date_value(1_700_000_000_123) {
            assert_eq!(timestamp_millis(&d), Some(1_700_000_000_123));
        } else {
            panic!("not a timestamp")
        }
        if let Value::Ext(-1, d) = date_value(-1500) {
            assert_eq!(d.len(), 12);
            assert_eq!(timestamp_millis(&d), Some(-1500));
        }
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(matches!(
            decode(&[0x92, 0x01]),
            Err(WireError::UnexpectedEof(_))
        ));
        assert!(matches!(
            decode(&[0xc1]),
            Err(WireError::InvalidMarker { .. })
        ));
        assert!(matches!(
            decode(&[0x01, 0x02]),
            Err(WireError::TrailingBytes(1))
        ));
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        let deep = vec![0x91u8; 1000];
        assert!(matches!(decode(&deep), Err(WireError::TooDeep(_))));
    }
}
