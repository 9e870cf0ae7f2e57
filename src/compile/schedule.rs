//! Scheduling decisions on a plan's steps, once they are built: which products run at the
//! same time (and moving them next to each other first), and which loop outputs overwrite
//! their inputs.

use super::plan::Step;
use crate::backend::cpu::fused;

/// Moves each large product up to just after the previous one when nothing in between
/// computes its operands, so that independent products end up next to each other (and can
/// run at the same time, see [`concurrent_products`]).
pub(super) fn hoist_products(mut steps: Vec<Step>, size: &dyn Fn(&Step) -> Option<usize>) -> Vec<Step> {
    let mut i = 0;
    while i < steps.len() {
        if size(&steps[i]).is_none() {
            i += 1;
            continue;
        }
        // The next product whose operands are all ready before step i + 1 (and that does not
        // need step i's result, so that the two can run at the same time).
        let mut written: Vec<usize> = step_outputs(&steps[i]);
        for j in i + 1..steps.len() {
            let ready = match &steps[j] {
                Step::Kernel { ins, .. } => !ins.iter().any(|v| written.contains(v)),
                Step::Fused { .. } => false,
            };
            if ready && size(&steps[j]).is_some() {
                let product = steps.remove(j);
                steps.insert(i + 1, product);
                break;
            }
            written.extend(step_outputs(&steps[j]));
        }
        i += 1;
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
                Step::Fused { .. } => false,
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

fn step_outputs(step: &Step) -> Vec<usize> {
    match step {
        Step::Kernel { out, .. } => vec![*out],
        Step::Fused { outs, .. } => outs.clone(),
    }
}

/// For each output of `prog`, an input whose storage it may overwrite: one that `reusable`
/// allows (read for the last time here, an intermediate of the output's size), of the
/// output's dtype, read only element for element (contiguous loads: each element is read
/// before the same element is written), and not taken by another output. Only maps (no
/// reduction) qualify.
pub(super) fn in_place_outputs(prog: &fused::Program, reusable: &dyn Fn(usize) -> bool) -> Vec<Option<usize>> {
    let mut taken: Vec<usize> = Vec::new();
    let inputs = prog.instrs.iter().filter_map(|i| match i {
        fused::Instr::Load { input, .. } => Some(*input),
        _ => None,
    });
    let max_input = inputs.max().map_or(0, |m| m + 1);
    prog.outputs
        .iter()
        .map(|&r| {
            if prog.reduce.is_some() {
                return None;
            }
            let p = (0..max_input).find(|&p| {
                let mut loads = prog.instrs.iter().enumerate().filter_map(|(i, ins)| match ins {
                    fused::Instr::Load { input, kind } if *input == p => Some((i, kind)),
                    _ => None,
                });
                !taken.contains(&p)
                    && reusable(p)
                    && loads.clone().next().is_some()
                    && loads.all(|(i, kind)| {
                        matches!(kind, fused::LoadKind::Contiguous) && prog.dtypes[i] == prog.dtypes[r]
                    })
            })?;
            taken.push(p);
            Some(p)
        })
        .collect()
}
