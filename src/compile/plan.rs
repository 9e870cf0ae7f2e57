//! Lowering an optimised graph to a [`Plan`]: element-wise chains fused into
//! single loops (with broadcasting loads, and a trailing reduction where it
//! consumes the chain), every other primitive one kernel call, steps in
//! dependency order, and each buffer dropped after its last use.

use crate::array::Array;
use crate::backend::cpu::{self, fused};
use crate::ir::{Graph, Var};
use crate::ops::{Prim, ReduceOp};
use crate::shape::Shape;
use crate::{Tensor, TensorType};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::Arc;

/// One unit of work.
#[derive(Clone, Debug)]
enum Step {
    /// One primitive through its CPU kernel.
    Kernel { prim: Prim, ins: Vec<usize>, out: usize, ty: TensorType },
    /// A fused element-wise loop (maybe reduced) reading `ins`, writing `outs`.
    Fused { prog: fused::Program, ins: Vec<usize>, outs: Vec<usize> },
}

/// An executable plan: value slots are graph vars; inputs and constants are preloaded.
#[derive(Clone, Debug)]
pub struct Plan {
    steps: Vec<Step>,
    /// After step `i`, these slots are no longer needed.
    free_after: Vec<Vec<usize>>,
    num_slots: usize,
    inputs: Vec<usize>,
    constants: Vec<(usize, Arc<Array>)>,
    outputs: Vec<usize>,
}

/// Primitives that become instructions of a fused loop. Broadcasts are not members:
/// a fused loop reads a broadcast value straight from its operand (a strided load).
fn fusible(prim: &Prim) -> bool {
    matches!(prim, Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Convert { .. })
}

/// The value a fused loop actually reads for operand `v`: through a broadcast to its operand.
fn source(g: &Graph, v: Var) -> Var {
    match g.nodes[v.index()].prim {
        Prim::BroadcastInDim { .. } => g.nodes[v.index()].inputs[0],
        _ => v,
    }
}

/// The position after which `v` can be read: inputs and constants are there from the start.
fn available(g: &Graph, v: Var) -> usize {
    let s = source(g, v);
    match g.nodes[s.index()].prim {
        Prim::Input(_) | Prim::Constant(_) => 0,
        _ => s.index(),
    }
}

struct Group {
    first: usize,
    shape: Shape,
    members: Vec<usize>,
    /// A reduction node fused onto the group's single output.
    reduce: Option<usize>,
}

impl Plan {
    /// Builds the plan for an (optimised) graph.
    pub fn new(g: &Graph) -> Plan {
        let n = g.nodes.len();
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in g.nodes.iter().enumerate() {
            for v in &node.inputs {
                users[v.index()].push(i);
            }
        }
        let is_output: Vec<bool> = {
            let mut o = vec![false; n];
            g.outputs.iter().for_each(|v| o[v.index()] = true);
            o
        };

        // 1. Group element-wise nodes of one shape into fusible regions.
        let mut group_of: Vec<Option<usize>> = vec![None; n];
        let mut groups: Vec<Group> = Vec::new();
        for (i, node) in g.nodes.iter().enumerate() {
            if !fusible(&node.prim) || node.ty.numel() == 0 {
                continue;
            }
            let join = node.inputs.iter().filter_map(|v| group_of[v.index()]).find(|&gid| {
                let grp = &groups[gid];
                grp.shape == node.ty.shape
                    && grp.reduce.is_none()
                    && node.inputs.iter().all(|v| group_of[v.index()] == Some(gid) || available(g, *v) < grp.first)
            });
            let gid = join.unwrap_or_else(|| {
                groups.push(Group { first: i, shape: node.ty.shape.clone(), members: vec![], reduce: None });
                groups.len() - 1
            });
            groups[gid].members.push(i);
            group_of[i] = Some(gid);
        }
        // 2. Fuse a float reduction over trailing axes onto a group whose only product it consumes.
        for (i, node) in g.nodes.iter().enumerate() {
            let Prim::Reduce { op, axes } = &node.prim else {
                continue;
            };
            let v = node.inputs[0].index();
            let Some(gid) = group_of[v] else { continue };
            let r = g.nodes[v].ty.rank();
            let trailing = !axes.is_empty() && axes.iter().enumerate().all(|(k, &a)| a == r - axes.len() + k);
            let grp = &groups[gid];
            let only_output = grp
                .members
                .iter()
                .all(|&m| m == v || (!is_output[m] && users[m].iter().all(|u| group_of[*u] == Some(gid))));
            if node.ty.dtype.is_float()
                && trailing
                && users[v].len() == 1
                && !is_output[v]
                && only_output
                && grp.reduce.is_none()
                && matches!(op, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min | ReduceOp::Prod)
            {
                groups[gid].reduce = Some(i);
                group_of[i] = Some(gid);
            }
        }

        // 3. Steps: one per group, one per other computing node. Record what each defines and reads.
        let mut step_of: Vec<Option<usize>> = vec![None; n];
        let mut steps: Vec<Step> = Vec::new();
        let mut reads: Vec<Vec<usize>> = Vec::new();
        let mut constants = Vec::new();
        for (i, node) in g.nodes.iter().enumerate() {
            match &node.prim {
                Prim::Input(_) => continue,
                Prim::Constant(a) => {
                    constants.push((i, a.clone()));
                    continue;
                }
                _ => {}
            }
            if matches!(node.prim, Prim::BroadcastInDim { .. })
                && !is_output[i]
                && !users[i].is_empty()
                && users[i].iter().all(|&u| group_of[u].is_some())
            {
                continue; // every reader is a fused loop, which reads the operand directly
            }
            if matches!(node.prim, Prim::BroadcastInDim { .. })
                && !is_output[i]
                && !users[i].is_empty()
                && users[i].iter().all(|&u| group_of[u].is_some())
            {
                continue; // every reader is a fused loop, which reads the operand directly
            }
            if let Some(gid) = group_of[i] {
                if step_of[i].is_some() {
                    continue;
                }
                let (step, ins) = fused_step(g, &groups[gid], &users, &is_output, &group_of, gid);
                let s = steps.len();
                for &m in groups[gid].members.iter().chain(groups[gid].reduce.iter()) {
                    step_of[m] = Some(s);
                }
                steps.push(step);
                reads.push(ins);
            } else {
                let ins: Vec<usize> = node.inputs.iter().map(|v| v.index()).collect();
                step_of[i] = Some(steps.len());
                steps.push(Step::Kernel { prim: node.prim.clone(), ins: ins.clone(), out: i, ty: node.ty.clone() });
                reads.push(ins);
            }
        }

        // 4. Order steps by dependencies (Kahn's algorithm, earliest step first).
        let deps: Vec<BTreeSet<usize>> =
            reads.iter().map(|ins| ins.iter().filter_map(|&v| step_of[v]).collect()).collect();
        let mut indegree: Vec<usize> = deps.iter().map(|d| d.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        for (s, d) in deps.iter().enumerate() {
            for &p in d {
                dependents[p].push(s);
            }
        }
        let mut ready: BTreeSet<usize> = (0..steps.len()).filter(|&s| indegree[s] == 0).collect();
        let mut order = Vec::with_capacity(steps.len());
        while let Some(s) = ready.pop_first() {
            order.push(s);
            for &d in &dependents[s] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        assert_eq!(order.len(), steps.len(), "plan: fusion produced a dependency cycle");
        let steps: Vec<Step> = order.iter().map(|&s| steps[s].clone()).collect();
        let reads: Vec<Vec<usize>> = order.iter().map(|&s| reads[s].clone()).collect();

        // 5. Free each slot after its last reader (outputs live to the end).
        let mut last_read: HashMap<usize, usize> = HashMap::new();
        for (s, ins) in reads.iter().enumerate() {
            for &v in ins {
                last_read.insert(v, s);
            }
        }
        let mut free_after = vec![Vec::new(); steps.len()];
        for (v, s) in last_read {
            if !is_output[v] {
                free_after[s].push(v);
            }
        }
        Plan {
            steps,
            free_after,
            num_slots: n,
            inputs: g.inputs.iter().map(|v| v.index()).collect(),
            constants,
            outputs: g.outputs.iter().map(|v| v.index()).collect(),
        }
    }

    /// Runs the plan on concrete arguments.
    pub fn run(&self, args: &[Tensor]) -> Vec<Tensor> {
        let mut slots: Vec<Option<Arc<Array>>> = vec![None; self.num_slots];
        for (&s, a) in self.inputs.iter().zip(args) {
            slots[s] = Some(match a.as_concrete() {
                Some(_) => a.concrete_arc(),
                None => panic!("plan: arguments must be concrete"),
            });
        }
        for (s, a) in &self.constants {
            slots[*s] = Some(a.clone());
        }
        for (step, free) in self.steps.iter().zip(&self.free_after) {
            match step {
                Step::Kernel { prim, ins, out, ty } => {
                    let arrays: Vec<&Array> = ins.iter().map(|&v| slots[v].as_deref().expect("ready")).collect();
                    let value = cpu::execute(prim, &arrays, ty);
                    slots[*out] = Some(Arc::new(value));
                }
                Step::Fused { prog, ins, outs } => {
                    let arrays: Vec<&Array> = ins.iter().map(|&v| slots[v].as_deref().expect("ready")).collect();
                    let values = fused::run(prog, &arrays);
                    for (&o, v) in outs.iter().zip(values) {
                        slots[o] = Some(Arc::new(v));
                    }
                }
            }
            for &v in free {
                slots[v] = None;
            }
        }
        self.outputs.iter().map(|&v| Tensor::from_arc(slots[v].clone().expect("output computed"))).collect()
    }

    /// A readable listing of the steps.
    pub fn dump(&self) -> String {
        let mut s = format!("plan ({} steps):\n", self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Kernel { prim, ins, out, ty } => {
                    let ins: Vec<String> = ins.iter().map(|v| format!("%{v}")).collect();
                    let _ = writeln!(s, "  {i}: %{out}: {ty} = {prim} {}", ins.join(" "));
                }
                Step::Fused { prog, ins, outs } => {
                    let ins: Vec<String> = ins.iter().map(|v| format!("%{v}")).collect();
                    let outs: Vec<String> = outs.iter().map(|v| format!("%{v}")).collect();
                    let red = match prog.reduce {
                        Some((op, row)) => format!(" then {}[rows of {row}]", op.name()),
                        None => String::new(),
                    };
                    let _ = writeln!(s, "  {i}: {} = fused{:?}{red}({})", outs.join(", "), prog.shape, ins.join(", "));
                    s.push_str(&prog.describe());
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|v| format!("%{v}")).collect();
        let _ = writeln!(s, "  return {}", outs.join(", "));
        s
    }

    /// Number of steps (fused loops and kernel calls).
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }
}

/// Builds the fused loop of a group: loads for outside values, one instruction per member.
fn fused_step(
    g: &Graph,
    grp: &Group,
    users: &[Vec<usize>],
    is_output: &[bool],
    group_of: &[Option<usize>],
    gid: usize,
) -> (Step, Vec<usize>) {
    let mut instrs = Vec::new();
    let mut dtypes = Vec::new();
    let mut reg_of: HashMap<usize, usize> = HashMap::new();
    let mut inputs: Vec<usize> = Vec::new();
    let mut loads: HashMap<(usize, String), usize> = HashMap::new();
    let shape = &grp.shape;
    let mut load = |v: Var, kind: fused::LoadKind, instrs: &mut Vec<fused::Instr>, dtypes: &mut Vec<crate::DType>| {
        let key = (v.index(), format!("{kind:?}"));
        if let Some(&r) = loads.get(&key) {
            return r;
        }
        let input = match inputs.iter().position(|&x| x == v.index()) {
            Some(p) => p,
            None => {
                inputs.push(v.index());
                inputs.len() - 1
            }
        };
        instrs.push(fused::Instr::Load { input, kind });
        dtypes.push(g.ty(v).dtype);
        loads.insert(key, instrs.len() - 1);
        instrs.len() - 1
    };
    for &m in &grp.members {
        let node = &g.nodes[m];
        let mut operand = |v: Var, instrs: &mut Vec<fused::Instr>, dtypes: &mut Vec<crate::DType>| -> usize {
            if group_of[v.index()] == Some(gid) {
                return reg_of[&v.index()];
            }
            let (x, kind) = match &g.nodes[v.index()].prim {
                Prim::BroadcastInDim { dims, .. } => {
                    let x = g.nodes[v.index()].inputs[0];
                    let kind = if g.ty(x).numel() == 1 {
                        fused::LoadKind::Scalar
                    } else {
                        fused::LoadKind::Strided(fused::broadcast_strides(&g.ty(x).shape, shape, dims))
                    };
                    (x, kind)
                }
                _ if g.ty(v).numel() == 1 => (v, fused::LoadKind::Scalar),
                _ => (v, fused::LoadKind::Contiguous),
            };
            load(x, kind, instrs, dtypes)
        };
        let instr = match &node.prim {
            Prim::Unary(op) => fused::Instr::Unary(*op, operand(node.inputs[0], &mut instrs, &mut dtypes)),
            Prim::Binary(op) => {
                let a = operand(node.inputs[0], &mut instrs, &mut dtypes);
                let b = operand(node.inputs[1], &mut instrs, &mut dtypes);
                fused::Instr::Binary(*op, a, b)
            }
            Prim::Select => {
                let p = operand(node.inputs[0], &mut instrs, &mut dtypes);
                let a = operand(node.inputs[1], &mut instrs, &mut dtypes);
                let b = operand(node.inputs[2], &mut instrs, &mut dtypes);
                fused::Instr::Select(p, a, b)
            }
            Prim::Convert { dtype } => fused::Instr::Convert(*dtype, operand(node.inputs[0], &mut instrs, &mut dtypes)),
            other => unreachable!("{} is not fusible", other.name()),
        };
        instrs.push(instr);
        dtypes.push(node.ty.dtype);
        reg_of.insert(m, instrs.len() - 1);
    }
    let (outputs, outs, reduce) = match grp.reduce {
        Some(rnode) => {
            let Prim::Reduce { op, axes } = &g.nodes[rnode].prim else { unreachable!() };
            let v = g.nodes[rnode].inputs[0].index();
            let row: usize = axes.iter().map(|&a| shape[a]).product();
            (vec![reg_of[&v]], vec![rnode], Some((*op, row)))
        }
        None => {
            let outs: Vec<usize> = grp
                .members
                .iter()
                .copied()
                .filter(|&m| is_output[m] || users[m].iter().any(|u| group_of[*u] != Some(gid)))
                .collect();
            (outs.iter().map(|m| reg_of[m]).collect(), outs, None)
        }
    };
    let prog = fused::Program { shape: shape.clone(), instrs, dtypes, outputs, reduce };
    (Step::Fused { prog, ins: inputs.clone(), outs }, inputs)
}
