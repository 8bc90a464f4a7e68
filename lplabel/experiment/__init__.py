"""The experiment stack, apart from the core: the accuracy harness (:mod:`lplabel.experiment.harness`,
``lplabel bench accuracy``) and the end-to-end demo (:mod:`lplabel.experiment.demo`, ``lplabel demo``).

They train teachers and students to *measure* the label stores; the core (store, codecs, relabel,
loader, interop) never imports them.
"""
