import pytest

from conftest import TINY_HOOK_1L, make_tiny_sae
from featgeom_tda.sources.hooks import check_hook_name, check_sae_matches_hook, hook_width, sae_hook_name


def test_unknown_hook_lists_valid_names_and_suggests(tiny_model_1l):
    with pytest.raises(ValueError, match=r"hook_name 'blocks.0.hook_resid_pots' does not exist.*Did you mean blocks.0.hook_resid_post.*Valid hook names: hook_embed"):
        check_hook_name(tiny_model_1l, "blocks.0.hook_resid_pots")
    assert check_hook_name(tiny_model_1l, TINY_HOOK_1L) == TINY_HOOK_1L


def test_hook_widths(tiny_model_1l):
    assert hook_width(tiny_model_1l, TINY_HOOK_1L) == 16
    assert hook_width(tiny_model_1l, "blocks.0.attn.hook_z", flatten_heads=True) == 16


def test_sae_width_and_hook_mismatch(tiny_model_1l, tiny_sae_1l):
    check_sae_matches_hook(tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    assert sae_hook_name(tiny_sae_1l) == TINY_HOOK_1L
    wide = make_tiny_sae(d_in=24, d_sae=8, hook_name=TINY_HOOK_1L, seed=0)
    with pytest.raises(ValueError, match=r"sae has d_in=24 but hook 'blocks.0.hook_resid_post' has width 16"):
        check_sae_matches_hook(tiny_model_1l, TINY_HOOK_1L, wide)
    with pytest.raises(ValueError, match=r"sae was trained on hook 'blocks.0.hook_resid_post' but hook_name is 'blocks.0.hook_resid_pre'"):
        check_sae_matches_hook(tiny_model_1l, "blocks.0.hook_resid_pre", tiny_sae_1l)
