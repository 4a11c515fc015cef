"""The training and evaluation runtime: the step (``step``), the resumable loop (``loop``)
and its hooks (``hooks``), checkpoints and the resume policy (``checkpoint``), recipes
(``recipe``), Horovod (``distributed``), progress output (``progress``), evaluation
(``evaluate``) and the whole run (``train``)."""
