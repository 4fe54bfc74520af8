"""Every registry has a conformance check in the package (as PettingZoo ships its API tests); each
passes on every built-in entry and fails on a broken one."""

from __future__ import annotations

import pytest

from multiseal.learning.grading import GRADERS, check_grader
from multiseal.learning.self_edit import STYLES, PromptStyle, check_style, split_lines
from multiseal.sim.mitigations import MITIGATIONS, Mitigation, check_mitigation


@pytest.mark.parametrize("name", STYLES.names())
def test_every_prompt_style_conforms(name):
    check_style(name)


@pytest.mark.parametrize("name", GRADERS.names())
def test_every_grader_conforms(name):
    check_grader(name)


@pytest.mark.parametrize("name", MITIGATIONS.names())
def test_every_mitigation_conforms_with_its_defaults(name):
    assert isinstance(check_mitigation(name), Mitigation)


def test_the_checks_catch_broken_entries():
    STYLES.register("test-untitled", PromptStyle("List the facts.", lambda completion, title: [completion]))
    GRADERS.register("test-lenient", lambda prediction, gold, question: 1.0)
    MITIGATIONS.register("test-overreplay", lambda params: Mitigation("test-overreplay", replay=2.0))
    try:
        with pytest.raises(AssertionError, match="sequences lack the title"):
            check_style("test-untitled")
        with pytest.raises(AssertionError, match="an empty reply scores above 0"):
            check_grader("test-lenient")
        with pytest.raises(AssertionError, match="replay 2.0 outside"):
            check_mitigation("test-overreplay")
    finally:
        STYLES.unregister("test-untitled")
        GRADERS.unregister("test-lenient")
        MITIGATIONS.unregister("test-overreplay")
    STYLES.register("test-fine", PromptStyle("List the facts.", split_lines))
    try:
        check_style("test-fine")
    finally:
        STYLES.unregister("test-fine")
