"""The analytic cycle/energy model (``vq4all energy``): energy tables in Accelergy's ERT form
(:mod:`~vq4all.sim.energy.tables`), the model that counts actions per architecture
(:mod:`~vq4all.sim.energy.model`), its report and sweeps (:mod:`~vq4all.sim.energy.report`)
and plots (:mod:`~vq4all.sim.energy.plots`). Cycles come from :mod:`vq4all.sim.arch`."""
