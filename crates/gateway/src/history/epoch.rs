//! A new epoch for a history (the type and its format are sio-wire's,
//! [`sio_wire::history::epoch`]; this draws the random bits).
pub use sio_wire::history::Epoch;

/// A fresh epoch: 64 random bits.
pub fn random() -> Epoch {
    Epoch::from_bits(rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_epochs_differ() {
        assert_ne!(super::random(), super::random());
    }
}
