//! One module per page; each also renders the fragments its live updates send.

pub(crate) mod studies;
pub(crate) mod study;
pub(crate) mod trial;
pub(crate) mod workers;
