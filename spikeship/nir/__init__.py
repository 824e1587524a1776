"""NIR semantics in one place: node categories (:mod:`.categories`: neurons, synapses,
pools, pass-through), conv / pool geometry (:mod:`.geometry`), the graph walk
(:mod:`.graph`: wiring, recurrent edges, execution order, walk back to a population),
shapes (:mod:`.shapes`), the validated read (:mod:`.read`) and the synaptic layers with
their populations (:mod:`.layers`). Export, every simulator, every chip's lowering and
mapper, energy and report read NIR graphs through here."""
