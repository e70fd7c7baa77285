"""Caches of loaded and merged models follow a run's weights, not its name.

A run deleted and trained again under the same name has other weights; the lm-eval merged copy and
the Playground's loaded model must both be made again. The adapters are real PEFT LoRA folders on
the tiny model, with random (non-zero) weights so that two of them merge to different models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def make_adapter(run_folder: Path, base: Path, seed: int, on_top_of: Path | None = None) -> Path:
    """A run folder holding a LoRA adapter, as a finished training run leaves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cai_core.models.adapters import adapter_stack, write_stack_record

    torch.manual_seed(seed)
    network = AutoModelForCausalLM.from_pretrained(base)
    lora = get_peft_model(network, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                              init_lora_weights=False, task_type="CAUSAL_LM"))
    adapter = run_folder / "adapter"
    lora.save_pretrained(adapter)
    write_stack_record(adapter, adapter_stack(str(on_top_of)) if on_top_of else None, str(base), {"run": run_folder.name})
    return run_folder


def first_weight(model_folder_or_network):
    import torch
    from transformers import AutoModelForCausalLM

    network = model_folder_or_network
    if not isinstance(network, torch.nn.Module):
        network = AutoModelForCausalLM.from_pretrained(network)
    return network.model.layers[0].self_attn.q_proj.weight.detach().clone()


def retrain(run_folder: Path, base: Path, seed: int, on_top_of: Path | None = None) -> None:
    """Delete the run and train another under its name (here: another adapter in its place)."""
    shutil.rmtree(run_folder)
    make_adapter(run_folder, base, seed, on_top_of)


@pytest.fixture
def stacked_run(tiny_model_dir, cai_home) -> Path:
    """A DPO run on top of an SFT run: a stack of two adapters, which lm-eval needs merged."""
    sft = make_adapter(cai_home / "runs" / "sft", tiny_model_dir, seed=1)
    return make_adapter(cai_home / "runs" / "dpo", tiny_model_dir, seed=2, on_top_of=sft)


def test_the_lm_eval_merged_copy_is_made_again_for_a_retrained_run(stacked_run, tiny_model_dir, cai_home):
    import torch

    from cai_core.models.adapters import load_merged
    from cai_core.evaluation.run import merged_model_folder

    first = merged_model_folder(str(stacked_run))
    assert first.parent == cai_home / "merged" / "dpo"
    assert merged_model_folder(str(stacked_run)) == first  # kept while the run is unchanged
    before = first_weight(first)

    retrain(stacked_run, tiny_model_dir, seed=3, on_top_of=cai_home / "runs" / "sft")
    second = merged_model_folder(str(stacked_run))
    assert second != first and not first.exists()  # the stale copy is gone, not served
    expected = first_weight(load_merged(str(stacked_run), torch.float32)[0])
    assert torch.equal(first_weight(second), expected) and not torch.equal(before, expected)


def test_the_playground_loads_a_retrained_run_again(stacked_run, tiny_model_dir, cai_home):
    import torch

    import ui.common

    ui.common._cached_model.clear()
    first = ui.common.get_model(str(stacked_run))
    assert ui.common.get_model(str(stacked_run)) is first  # still cached while the run is unchanged

    retrain(stacked_run, tiny_model_dir, seed=3, on_top_of=cai_home / "runs" / "sft")
    second = ui.common.get_model(str(stacked_run))
    assert second is not first
    assert not torch.equal(first_weight(first.model), first_weight(second.model))
    ui.common._cached_model.clear()
