//! Durations as the gateway's options and the history rules (`--history GLOB=SIZE/TTL`) write
//! them: `250ms`, `10s`, `2m` or a bare number of seconds; printed back in milliseconds.
//! Here so that the gateway and `sio-emit` read a TTL the same way.
use std::time::Duration;

/// Parse `250ms`, `10s`, `2m`, `1.5` (seconds); the error says what is wrong.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 500ms, 10s, 2m)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is not a positive duration"));
    }
    Ok(Duration::from_millis((n * mult_ms as f64).round() as u64))
}

/// The form [`parse_duration`] reads back: `<n>ms`.
pub fn format_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("-1s").unwrap_err().contains("positive"));
        let d = Duration::from_secs(600);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
