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
/// reduction) qualify.
pub(super) fn in_place_outputs(prog: &fused::Program, reusable: &dyn Fn(usize) -> bool) -> Vec<Option<usize>> {
    if prog.reduce.is_some() {
        return vec![None; prog.outputs.len()];
    }
    // Per input: the dtype of its loads if every one is contiguous (None: not a candidate).
    let mut loads: std::collections::BTreeMap<usize, Option<crate::DType>> = Default::default();
    for (i, ins) in prog.instrs.iter().enumerate() {
        if let fused::Instr::Load { input, kind } = ins {
            let contiguous = matches!(kind, fused::LoadKind::Contiguous);
            let entry = loads.entry(*input).or_insert(Some(prog.dtypes[i]));
            if !contiguous || *entry != Some(prog.dtypes[i]) {
                *entry = None;
            }
        }
    }
    // Candidates by dtype, lowest input first; each output takes the first of its dtype.
    let mut free: std::collections::HashMap<crate::DType, std::collections::VecDeque<usize>> = Default::default();
    for (&p, dtype) in &loads {
        if let Some(d) = dtype {
            if reusable(p) {
                free.entry(*d).or_default().push_back(p);
            }
        }
    }
    prog.outputs.iter().map(|&r| free.get_mut(&prog.dtypes[r]).and_then(|q| q.pop_front())).collect()
}
