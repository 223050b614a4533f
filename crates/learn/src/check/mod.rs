//! Black-box checks of a learner's program over the pipe protocol (being written).
