//! Several event arguments as one value: what the HTTP API's `args` and the Admin UI's `emit`
//! command send.
use serde::{Serialize, ser::SerializeTuple};
use serde_json::Value;

/// Arguments spread as separate Socket.IO event arguments (`emit(event, a, b)`):
/// socketioxide spreads values that serialize as a tuple.
pub struct Args<'a>(pub &'a [Value]);

impl Serialize for Args<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}
