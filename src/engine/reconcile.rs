//! Sessions across a hot reload of the flows.
//!
//! The rule (documented in the README): a session is mapped onto the new flows by
//! flow id and step id. If every frame still names an existing flow and step, the
//! conversation carries on untouched (the step's new wording applies). If only the
//! step the worker is on vanished, that flow starts again from its first step (its
//! scores reset). If a flow on the stack vanished, the worker goes to the menu.
//! Either way the bot says so in one short line. "back" never returns to a step
//! that no longer exists: such history entries are dropped.

use super::{Frame, Session};
use crate::flow::model::Bundle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Every position still exists.
    Unchanged,
    /// The current step vanished: its flow starts again.
    RestartedFlow,
    /// A flow vanished: back to the menu.
    ToMenu,
}

fn valid(bundle: &Bundle, f: &Frame) -> bool {
    bundle.flow(&f.flow).is_some_and(|fl| fl.step_index(&f.step).is_some())
}

/// Map `session` onto `bundle` by the rule above. Pure.
pub fn reconcile(bundle: &Bundle, mut session: Session) -> (Session, Reconciled) {
    session.history.retain(|snap| snap.stack.iter().all(|f| valid(bundle, f)));
    let Some((top, below)) = session.stack.split_last() else { return (session, Reconciled::Unchanged) };
    if valid(bundle, top) && below.iter().all(|f| valid(bundle, f)) {
        return (session, Reconciled::Unchanged);
    }
    let top_flow = bundle.flow(&top.flow).and_then(|fl| fl.steps.first().map(|s| (fl, s.id.clone())));
    if let Some((flow, first)) = top_flow
        && below.iter().all(|f| valid(bundle, f))
    {
        for var in &flow.score_vars {
            session.vars.remove(var);
            session.vars.remove(&format!("{var}_band"));
        }
        if let Some(top) = session.stack.last_mut() {
            top.step = first;
            top.here = true;
        }
        session.misses = 0;
        return (session, Reconciled::RestartedFlow);
    }
    let menu = &bundle.settings.menu;
    session.stack.clear();
    session.history.clear();
    session.vars.clear();
    session.severity = None;
    session.misses = 0;
    if let Some(first) = bundle.flow(menu).and_then(|fl| fl.steps.first()) {
        session.stack.push(Frame { flow: menu.clone(), step: first.id.clone(), here: true });
    }
    (session, Reconciled::ToMenu)
}
