//! Fuzzes the ovs-ofctl flow parser with arbitrary UTF-8: it must never panic, and every
//! flow it accepts must print and parse back to the same printed text.
#![no_main]

use dvrlab_native::ofproto::action::FlowModCommand;
use dvrlab_native::ofproto::format::{format_flow, ActionStyle};
use dvrlab_native::ofproto::parse::{parse_flow, parse_flows, NoNames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_flows(text, &NoNames);
    let Ok(fm) = parse_flow(text, FlowModCommand::Add, &NoNames) else { return };
    for style in [ActionStyle::Installed, ActionStyle::Normalized] {
        let printed = format_flow(&fm, &NoNames, false, style);
        let again = parse_flow(&printed, FlowModCommand::Add, &NoNames)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(format_flow(&again, &NoNames, false, style), printed);
    }
});
