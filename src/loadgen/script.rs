//! What the simulated workers say: walks through the default flows, typed and by
//! button, with some concern and crisis messages. Synthetic text only.

use crate::engine::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    Open,
    Text(&'static str),
    /// A button press (0-based choice of the current question).
    Button(usize),
    /// A message the crisis screen must classify as crisis.
    Crisis(&'static str),
}

impl Say {
    pub fn event(self) -> Event<'static> {
        match self {
            Say::Open => Event::Open,
            Say::Text(t) | Say::Crisis(t) => Event::Text(t),
            Say::Button(i) => Event::Choice(i),
        }
    }
}

use Say::*;

/// Menu → quick check-in (PHQ-4) typed as numbers and labels → result → menu.
const TYPED: &[Say] = &[
    Text("hi"),
    Text("1"),
    Text("2"),
    Text("nearly every day"),
    Text("several days"),
    Text("not at all"),
    Text("2"),
    Text("menu"),
];

/// The same walk with buttons, ending the conversation ("stop" forgets it).
const BUTTONS: &[Say] =
    &[Open, Button(0), Button(0), Button(1), Button(2), Button(3), Button(1), Text("menu"), Text("stop")];

/// A concern message mid-screening, a correction with "back", then on.
const CONCERN: &[Say] = &[
    Text("hello"),
    Text("1"),
    Text("I am so exhausted I cannot cope anymore"),
    Text("3"),
    Text("back"),
    Text("2"),
    Text("1"),
    Text("4"),
    Text("menu"),
];

/// A crisis disclosure after the greeting; the conversation continues afterwards.
const CRISIS: &[Say] = &[Text("hi"), Crisis("I want to end my life"), Text("menu"), Text("1"), Text("2")];

/// Script for worker `i`: 45% typed, 35% buttons, 10% concern, 10% crisis,
/// spread by a fixed hash so a run is repeatable.
pub fn for_worker(i: u64) -> &'static [Say] {
    match mix(i) % 20 {
        0..=8 => TYPED,
        9..=15 => BUTTONS,
        16..=17 => CONCERN,
        _ => CRISIS,
    }
}

/// The `n`th message of worker `i` (scripts repeat).
pub fn message(i: u64, n: u64) -> Say {
    let s = for_worker(i);
    s[(n % s.len() as u64) as usize]
}

/// splitmix64: a fixed, well-spread hash of the worker number.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
