//! Static checks across a whole bundle: references, reachability, endings,
//! band coverage, variables. Each finding is a diagnostic at the place to fix.

use super::decode::Ctx;
use super::model::*;
use crate::diag::{Diagnostic, Pos, did_you_mean};
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub fn check(bundle: &Bundle, diags: &mut Vec<Diagnostic>) {
    settings_refs(bundle, diags);
    let mut set_vars: BTreeSet<String> = BTreeSet::new();
    for flow in bundle.flows.values() {
        collect_set_vars(flow, bundle, &mut set_vars);
    }
    for flow in bundle.flows.values() {
        let mut cx = Ctx::new(&flow.file, diags);
        references(&mut cx, flow, bundle);
        graph(&mut cx, flow);
        band_ranges(&mut cx, flow, bundle);
        used_vars(&mut cx, flow, &set_vars);
        languages(&mut cx, flow, bundle);
    }
    for table in bundle.bands.values() {
        let mut cx = Ctx::new(&table.file, diags);
        band_coverage(&mut cx, table);
    }
}

fn settings_refs(bundle: &Bundle, diags: &mut Vec<Diagnostic>) {
    let s = &bundle.settings;
    let mut cx = Ctx::new(&s.file, diags);
    for (key, id) in [("entry", &s.entry), ("menu", &s.menu), ("crisis", &s.crisis), ("concern", &s.concern)] {
        if !id.is_empty() && !bundle.flows.contains_key(id) {
            cx.error(Pos::new(1, 1), format!("`{key}` names flow `{id}`, which does not exist"), flow_hint(bundle, id));
        }
    }
    if !bundle.directory.services.iter().any(|s| s.kind == crate::routing::ServiceKind::CrisisLine) {
        cx.error(
            Pos::new(1, 1),
            "the services directory has no crisis line",
            Some("crisis replies need at least one `kind: crisis_line` service".into()),
        );
    }
    for lang in &s.languages {
        let has_line = bundle.directory.services.iter().any(|svc| {
            svc.kind == crate::routing::ServiceKind::CrisisLine && (svc.languages.contains(lang) || svc.interpreters)
        });
        if !has_line {
            cx.warn(Pos::new(1, 1), format!("no crisis line speaks `{lang}` or offers interpreters"), None);
        }
    }
}

fn flow_hint(bundle: &Bundle, id: &str) -> Option<String> {
    Some(
        did_you_mean(id, bundle.flows.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                format!("flows defined: {}", bundle.flows.keys().cloned().collect::<Vec<_>>().join(", "))
            }),
    )
}

fn step_hint(flow: &Flow, id: &str) -> Option<String> {
    Some(
        did_you_mean(id, flow.steps.iter().map(|s| s.id.as_str()))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                format!(
                    "steps in `{}`: {}",
                    flow.id,
                    flow.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                )
            }),
    )
}

fn references(cx: &mut Ctx, flow: &Flow, bundle: &Bundle) {
    let check_step = |cx: &mut Ctx, pos: Pos, id: &str| {
        if flow.step_index(id).is_none() {
            cx.error(pos, format!("no step `{id}` in flow `{}`", flow.id), step_hint(flow, id));
        }
    };
    let check_flow = |cx: &mut Ctx, pos: Pos, id: &str| {
        if !bundle.flows.contains_key(id) {
            cx.error(pos, format!("no flow `{id}`"), flow_hint(bundle, id));
        }
    };
    for step in &flow.steps {
        if let Some(next) = &step.next {
            check_step(cx, step.pos, next);
        }
        match &step.action {
            Action::Goto(t) => check_step(cx, step.pos, t),
            Action::Start(t) | Action::Call(t) => check_flow(cx, step.pos, t),
            Action::Branch(arms) => arms.iter().for_each(|a| check_step(cx, a.pos, &a.goto)),
            Action::Ask(ask) => {
                for c in &ask.choices {
                    match &c.then {
                        Some(Then::Goto(t)) => check_step(cx, c.pos, t),
                        Some(Then::Start(t)) | Some(Then::Call(t)) => check_flow(cx, c.pos, t),
                        _ => {}
                    }
                }
                if ask.choices.is_empty() && ask.answer_set.is_none() {
                    cx.error(
                        step.pos,
                        format!("step `{}` asks a question with no choices", step.id),
                        Some("add `choices:` or use `ask_text:` for a free answer".into()),
                    );
                }
            }
            Action::Band(b) => {
                if !bundle.bands.contains_key(&b.table) {
                    let hint = did_you_mean(&b.table, bundle.bands.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    cx.error(
                        step.pos,
                        format!("no band table `{}`", b.table),
                        hint.or(Some("define it in bands.yaml".into())),
                    );
                }
            }
            Action::Route(r) => {
                for id in &r.services {
                    if bundle.directory.get(id).is_none() {
                        let hint = did_you_mean(id, bundle.directory.services.iter().map(|s| s.id.as_str()))
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| "define it in services.yaml".into());
                        cx.error(step.pos, format!("service `{id}` is not in the services directory"), Some(hint));
                    }
                }
            }
            Action::Say(_) | Action::AskText(_) | Action::Set(_) | Action::End(_) | Action::Handoff(_) => {}
        }
    }
}

/// Where control can go after `i` inside the flow, and whether it can leave the flow from `i`.
fn successors(flow: &Flow, i: usize) -> (Vec<usize>, bool) {
    let step = &flow.steps[i];
    let fallthrough = || match &step.next {
        Some(n) => flow.step_index(n).map(|x| (vec![x], false)).unwrap_or((vec![], false)),
        None if i + 1 < flow.steps.len() => (vec![i + 1], false),
        None => (vec![], true),
    };
    match &step.action {
        Action::Goto(t) => (flow.step_index(t).into_iter().collect(), false),
        Action::Start(_) | Action::End(_) => (vec![], true),
        Action::Branch(arms) => {
            let mut out: Vec<usize> = arms.iter().filter_map(|a| flow.step_index(&a.goto)).collect();
            let mut exits = false;
            if arms.last().is_none_or(|a| a.when.is_some()) {
                let (more, ex) = fallthrough();
                out.extend(more);
                exits = ex;
            }
            (out, exits)
        }
        Action::Ask(ask) => {
            let mut out = Vec::new();
            let mut exits = false;
            let mut default_used = false;
            for c in &ask.choices {
                match &c.then {
                    Some(Then::Goto(t)) => out.extend(flow.step_index(t)),
                    Some(Then::Start(_)) | Some(Then::End) => exits = true,
                    Some(Then::Call(_)) | None => default_used = true,
                }
            }
            if default_used || ask.choices.is_empty() {
                let (more, ex) = fallthrough();
                out.extend(more);
                exits |= ex;
            }
            (out, exits)
        }
        _ => fallthrough(),
    }
}

fn graph(cx: &mut Ctx, flow: &Flow) {
    let n = flow.steps.len();
    if n == 0 {
        return;
    }
    let succ: Vec<(Vec<usize>, bool)> = (0..n).map(|i| successors(flow, i)).collect();
    // Reachable from the first step.
    let mut reached = vec![false; n];
    let mut stack = vec![0];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        stack.extend(succ[i].0.iter().copied());
    }
    for (i, step) in flow.steps.iter().enumerate() {
        if !reached[i] {
            cx.error(
                step.pos,
                format!("step `{}` can never be reached", step.id),
                Some("jump to it with `goto`/`next`, or remove it".into()),
            );
        }
    }
    // Can reach an ending: reverse reachability from steps that leave the flow.
    let mut can_end = vec![false; n];
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            if !can_end[i] && (succ[i].1 || succ[i].0.iter().any(|&j| can_end[j])) {
                can_end[i] = true;
                changed = true;
            }
        }
    }
    for (i, step) in flow.steps.iter().enumerate() {
        if reached[i] && !can_end[i] {
            cx.error(
                step.pos,
                format!("from step `{}` the flow can never reach an end", step.id),
                Some("every path needs an `end`, a `start` of another flow, or to run off the last step".into()),
            );
        }
    }
    // A loop with no question in it would spin without waiting for the worker.
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    fn dfs(i: usize, flow: &Flow, succ: &[(Vec<usize>, bool)], state: &mut [u8], found: &mut Option<usize>) {
        state[i] = 1;
        if !flow.steps[i].action.is_question() {
            for &j in &succ[i].0 {
                if flow.steps[j].action.is_question() {
                    continue;
                }
                if state[j] == 1 && found.is_none() {
                    *found = Some(j);
                } else if state[j] == 0 {
                    dfs(j, flow, succ, state, found);
                }
            }
        }
        state[i] = 2;
    }
    for i in 0..n {
        if state[i] == 0 {
            let mut found = None;
            dfs(i, flow, &succ, &mut state, &mut found);
            if let Some(j) = found {
                cx.error(
                    flow.steps[j].pos,
                    format!("steps loop back to `{}` without asking anything", flow.steps[j].id),
                    Some("a loop must pass through an `ask` so the worker can leave it".into()),
                );
            }
        }
    }
}

/// Lowest and highest each score variable can reach in one pass through this flow.
fn score_ranges(flow: &Flow) -> BTreeMap<&str, (i64, i64)> {
    let mut out: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for step in &flow.steps {
        if let Action::Ask(ask) = &step.action {
            let lo = ask.choices.iter().map(|c| c.score).min().unwrap_or(0);
            let hi = ask.choices.iter().map(|c| c.score).max().unwrap_or(0);
            for var in &ask.score {
                let e = out.entry(var.as_str()).or_insert((0, 0));
                e.0 += lo;
                e.1 += hi;
            }
        }
    }
    out
}

fn band_ranges(cx: &mut Ctx, flow: &Flow, bundle: &Bundle) {
    let ranges = score_ranges(flow);
    for step in &flow.steps {
        let Action::Band(b) = &step.action else { continue };
        let Some(table) = bundle.bands.get(&b.table) else { continue };
        match ranges.get(b.score.as_str()) {
            Some(&(lo, hi)) => {
                if lo < table.min || hi > table.max {
                    cx.error(
                        step.pos,
                        format!(
                            "`{}` can range {lo}..{hi} in this flow but band table `{}` covers {}..{}",
                            b.score, table.id, table.min, table.max
                        ),
                        Some("fix the table's `range` or the choices' scores".into()),
                    );
                }
            }
            None => cx.warn(
                step.pos,
                format!("no question in flow `{}` adds to `{}`", flow.id, b.score),
                Some("add `score: <variable>` to the questions".into()),
            ),
        }
    }
}

fn band_coverage(cx: &mut Ctx, table: &BandTable) {
    if table.min > table.max {
        cx.error(table.pos, format!("band table `{}` has its range backwards", table.id), None);
        return;
    }
    let mut bands: Vec<&Band> = table.bands.iter().collect();
    bands.sort_by_key(|b| (b.from, b.to));
    let mut expect = table.min;
    for (i, b) in bands.iter().enumerate() {
        if b.from > expect {
            cx.error(
                b.pos,
                format!("band table `{}` has a gap: {}..{} is in no band", table.id, expect, b.from - 1),
                Some("make each band's `from` one more than the previous `to`".into()),
            );
        }
        if i > 0 && b.from < expect {
            cx.error(
                b.pos,
                format!("band `{}` overlaps the band before it ({}..{})", b.id, b.from, (expect - 1).min(b.to)),
                Some("bands must not share scores".into()),
            );
        }
        if b.from < table.min || b.to > table.max {
            cx.error(
                b.pos,
                format!(
                    "band `{}` ({}..{}) lies outside the table's range {}..{}",
                    b.id, b.from, b.to, table.min, table.max
                ),
                None,
            );
        }
        expect = expect.max(b.to + 1);
    }
    if expect <= table.max {
        cx.error(
            table.pos,
            format!("band table `{}` has a gap: {}..{} is in no band", table.id, expect, table.max),
            None,
        );
    }
}

fn collect_set_vars(flow: &Flow, bundle: &Bundle, out: &mut BTreeSet<String>) {
    for step in &flow.steps {
        match &step.action {
            Action::Ask(ask) => {
                out.extend(ask.score.iter().cloned());
                for c in &ask.choices {
                    out.extend(c.set.iter().map(|(k, _)| k.clone()));
                }
            }
            Action::Set(pairs) => out.extend(pairs.iter().map(|(k, _)| k.clone())),
            Action::Band(b) => {
                out.insert(format!("{}_band", b.score));
                if bundle.bands.contains_key(&b.table) {
                    out.insert(b.score.clone());
                }
            }
            _ => {}
        }
    }
}

fn used_vars(cx: &mut Ctx, flow: &Flow, set: &BTreeSet<String>) {
    let report = |cx: &mut Ctx, pos: Pos, var: &str| {
        if !set.contains(var) {
            let hint = did_you_mean(var, set.iter().map(String::as_str)).map(|s| format!("did you mean `{s}`?"));
            cx.warn(pos, format!("variable `{var}` is never set by any flow, so it is always 0"), hint);
        }
    };
    for step in &flow.steps {
        let mut vars = Vec::new();
        match &step.action {
            Action::Branch(arms) => arms.iter().filter_map(|a| a.when.as_ref()).for_each(|c| c.variables(&mut vars)),
            Action::Set(pairs) => pairs.iter().for_each(|(_, e)| e.variables(&mut vars)),
            _ => {}
        }
        let seen: HashSet<&str> = vars.into_iter().collect();
        for v in seen {
            report(cx, step.pos, v);
        }
    }
}

fn languages(cx: &mut Ctx, flow: &Flow, bundle: &Bundle) {
    for l in &bundle.settings.languages {
        if !flow.languages.contains(l) {
            cx.warn(
                flow.pos,
                format!("flow `{}` is not written in `{l}`, which the bot offers", flow.id),
                Some(format!("workers using `{l}` will see `{}` text", bundle.settings.default_language)),
            );
        }
    }
}
