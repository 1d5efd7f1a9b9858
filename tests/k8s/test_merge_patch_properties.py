"""``merge_patch_between`` computes a merge patch that really turns one object into another."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fairshift.k8s.workloads import merge_patch_between
from tests.fakes import merge_patch

# Cheap to generate (small alphabets, few leaves): the properties are about structure, and
# generation must stay fast on a busy machine.
keys = st.sampled_from(["a", "b", "c", "labels", "spec"])
scalars = st.one_of(st.integers(-3, 3), st.sampled_from(["", "x", "yz"]), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=6,
)
objects = st.dictionaries(keys, values, max_size=4)


@given(objects, objects)
def test_applying_the_patch_to_old_gives_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = merge_patch_between(old, new)

    assert merge_patch(copy.deepcopy(old), patch) == new


@given(objects)
def test_an_unchanged_object_needs_an_empty_patch(obj: dict[str, Any]) -> None:
    assert merge_patch_between(obj, copy.deepcopy(obj)) == {}
