//! TCP server library on the mio event loop: coming in the net-socket issue.
