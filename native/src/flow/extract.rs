//! Flow key extraction (under construction).
