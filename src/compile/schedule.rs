//! Scheduling decisions on a plan's steps, once they are built: which products run at the
//! same time (and moving them next to each other first), and which loop outputs overwrite
//! their inputs.

use super::plan::Step;
use crate::backend::cpu::fused;

/// Moves each large product up to just after the previous one when nothing in between
/// computes its operands, so that independent products end up next to each other (and can
/// run at the same time, see [`concurrent_products`]).
///
/// Linear in the steps scanned: the values written since step `i` are marked in a table
/// stamped with `i` (no set to clear or search), and a hoisted product moves by rotating
/// only the steps it passes over — plans of unrolled programs have tens of thousands of steps.
pub(super) fn hoist_products(mut steps: Vec<Step>, size: &dyn Fn(&Step) -> Option<usize>) -> Vec<Step> {
    let slots = steps.iter().flat_map(|s| step_outputs(s).into_iter().chain(step_inputs(s).iter().copied())).max();
    // written_since[v] == i + 1: value v is computed at or after step i.
    let mut written_since = vec![0usize; slots.map_or(0, |m| m + 1)];
    for i in 0..steps.len() {
        if size(&steps[i]).is_none() {
            continue;
        }
        // The next product whose operands are all ready before step i + 1 (and that does not
        // need step i's result, so that the two can run at the same time).
        let stamp = i + 1;
        for v in step_outputs(&steps[i]) {
            written_since[v] = stamp;
        }
        for j in i + 1..steps.len() {
            let ready = match &steps[j] {
                Step::Kernel { ins, .. } => !ins.iter().any(|&v| written_since[v] == stamp),
                Step::Fused { .. } | Step::Multi { .. } | Step::DotArg { .. } => false,
            };
            if ready && size(&steps[j]).is_some() {
                steps[i + 1..=j].rotate_right(1);
                break;
            }
            for v in step_outputs(&steps[j]) {
                written_since[v] = stamp;
            }
        }
    }
    steps
}

/// Groups of consecutive, independent, similar-sized products (up to one per thread) that
/// run at the same time: the `together` field of [`Plan`](super::Plan).
pub(super) fn concurrent_products(steps: &[Step], size: &dyn Fn(&Step) -> Option<usize>, threads: usize) -> Vec<usize> {
    let mut together = vec![1; steps.len()];
    let mut i = 0;
    while i < steps.len() {
        let Some(first) = size(&steps[i]) else {
            i += 1;
            continue;
        };
        let mut written: Vec<usize> = step_outputs(&steps[i]);
        let mut j = i + 1;
        while j < steps.len() && j - i < threads {
            let independent = match &steps[j] {
                Step::Kernel { ins, .. } => !ins.iter().any(|v| written.contains(v)),
                Step::Fused { .. } | Step::Multi { .. } | Step::DotArg { .. } => false,
            };
            let similar = size(&steps[j]).is_some_and(|s| s <= 2 * first && first <= 2 * s);
            if !(independent && similar) {
                break;
            }
            written.extend(step_outputs(&steps[j]));
            j += 1;
        }
        if j - i > 1 {
            together[i] = j - i;
            together[i + 1..j].fill(0);
        }
        i = j;
    }
    together
}

fn step_inputs(step: &Step) -> &[usize] {
    step.inputs()
}

fn step_outputs(step: &Step) -> Vec<usize> {
    step.outputs()
}

/// For each output of `prog`, an input whose storage it may overwrite: one that `reusable`
/// allows (read for the last time here, an intermediate of the output's size), of the
/// output's dtype, read only element for element (contiguous loads: each element is read
/// before the same element is written), and not taken by another output. Only maps (no
/// reduction) qualify, and only loops whose kernel never redoes a pass (an exact rerun would
/// read the outputs of the fast pass, see `native::may_redo_passes`).
pub(super) fn in_place_outputs(prog: &fused::Program, reusable: &dyn Fn(usize) -> bool) -> Vec<Option<usize>> {
    if prog.reduce.is_some() || crate::backend::cpu::native::may_redo_passes(prog) {
        return vec![None; prog.outputs.len()];
    }
    // Per input: the dtype of its loads if every one is contiguous (`Some(None)`: not a
    // candidate; `None`: not loaded). Indexed by input, so visited in increasing order.
    let inputs =
        prog.instrs
            .iter()
            .filter_map(|i| if let fused::Instr::Load { input, .. } = i { Some(*input + 1) } else { None });
    let mut loads: Vec<Option<Option<crate::DType>>> = vec![None; inputs.max().unwrap_or(0)];
    for (i, ins) in prog.instrs.iter().enumerate() {
        if let fused::Instr::Load { input, kind } = ins {
            let contiguous = matches!(kind, fused::LoadKind::Contiguous);
            let entry = loads[*input].get_or_insert(Some(prog.dtypes[i]));
            if !contiguous || *entry != Some(prog.dtypes[i]) {
                *entry = None;
            }
        }
    }
    // Candidates by dtype, lowest input first; each output takes the first of its dtype.
    // (A short list per dtype, searched: a loop has few dtypes.)
    let mut free: Vec<(crate::DType, std::collections::VecDeque<usize>)> = Vec::new();
    for (p, dtype) in loads.iter().enumerate() {
        if let Some(Some(d)) = dtype {
            if reusable(p) {
                match free.iter_mut().find(|(e, _)| e == d) {
                    Some((_, q)) => q.push_back(p),
                    None => free.push((*d, std::collections::VecDeque::from([p]))),
                }
            }
        }
    }
    prog.outputs
        .iter()
        .map(|&r| free.iter_mut().find(|(e, _)| *e == prog.dtypes[r]).and_then(|(_, q)| q.pop_front()))
        .collect()
}
