//! OpenFlow tables: flow text parsing and printing, the priority classifier, rules.

pub mod action;
pub mod classifier;
pub mod dump;
pub mod format;
pub mod parse;
pub mod table;
