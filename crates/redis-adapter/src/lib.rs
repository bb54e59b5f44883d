//! socketioxide adapter over fred speaking the @socket.io/redis-adapter protocol.
