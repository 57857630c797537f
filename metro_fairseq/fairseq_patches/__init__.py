"""Every change the plugin makes to fairseq's (and torch's) behaviour, installed by one call.

``metro_fairseq/plugin.py`` calls ``install()``; each module's docstring names the fairseq
function it wraps, why, and the test that covers it. Importing this package (or one of its modules)
changes nothing; only ``install()`` does, and installing twice is harmless.

| module | wraps | so that |
|---|---|---|
| checkpoint_safe_globals | torch.serialization safe globals | the weights-only loader opens fairseq checkpoints |
| checkpoint_read_check | checkpoint_utils.load_checkpoint_to_cpu | broken or code-carrying files are refused in one line |
| atomic_checkpoint_writes | checkpoint_utils.torch_persistent_save, PathManager.copy | a kill never leaves a half-written checkpoint |
| resume_recovery | checkpoint_utils.load_checkpoint | a run resumes from the newest readable checkpoint |
| master_weights_in_checkpoints | _FP16OptimizerMixin.state_dict / load_state_dict | bf16 / fp16 resume exactly |
| bf16_without_tpu | options.parse_args_and_arch, distributed.utils.call_main | ``--bf16`` does not force ``--tpu`` |
| one_line_errors | distributed.utils.call_main | the plugin's errors end a run with one line |
| sentence_prediction_input_checks | SentencePredictionTask.load_dataset / load_dictionary | bad GLUE data is refused before training |
"""


def install() -> None:
    from . import (
        atomic_checkpoint_writes,
        bf16_without_tpu,
        checkpoint_read_check,
        checkpoint_safe_globals,
        master_weights_in_checkpoints,
        one_line_errors,
        resume_recovery,
        sentence_prediction_input_checks,
    )

    for patch in (checkpoint_safe_globals, checkpoint_read_check, atomic_checkpoint_writes, resume_recovery,
                  master_weights_in_checkpoints, bf16_without_tpu, one_line_errors, sentence_prediction_input_checks):
        patch.install()
