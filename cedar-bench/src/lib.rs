//! Nothing here: the crate holds `benches/side_by_side.rs`.
