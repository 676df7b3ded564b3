//! The fast path: an exact-match cache (`emc`) in front of the megaflow cache (`megaflow`),
//! then an upcall to the slow path on a miss, as OVS's userspace datapath does it.
//!
//! A packet's key is looked up in the EMC by its full hash; on a miss, in the megaflow
//! subtables (a burst at a time, `MegaflowCache::lookup_batch`); a megaflow hit may be copied
//! into the EMC (`Emc::maybe_insert`). On a megaflow miss, translation produces the actions
//! and the megaflow mask, and the new megaflow is installed unless the cache is full.
//! Removing a megaflow changes its slot's generation, which invalidates the EMC entries that
//! point to it.

pub mod emc;
pub mod megaflow;
