//! Flow keys and masks, the field table, and extraction of a key from packet bytes.

pub mod compose;
pub mod extract;
pub mod field;
pub mod key;

pub use field::{Field, FieldId, Subfield};
pub use key::FlowKey;
