"""NIR semantics in one place: the validated read (:mod:`.read`), node shapes and
conv / pool geometry (:mod:`.shapes`) and the graph walk of synaptic layers and neuron
populations (:mod:`.graph`). Export, every simulator, every chip's lowering and mapper,
energy and report read NIR graphs through here."""
