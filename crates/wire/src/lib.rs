//! Redis wire formats of the Socket.IO ecosystem.
