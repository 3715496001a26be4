import pytest

from imgcls_cli.errors import python_spelling, unknown_name_message


def test_unknown_name_suggests_the_closest_and_lists_valid():
    message = unknown_name_message("arch", "simplcnn", ["simplecnn", "resnet8"])
    assert "Did you mean 'simplecnn'?" in message
    assert "Valid: simplecnn, resnet8." in message


def test_unknown_name_without_close_match_only_lists():
    message = unknown_name_message("arch", "zzz", ["simplecnn", "resnet8"])
    assert "Did you mean" not in message


@pytest.mark.parametrize(
    "message, python",
    [
        ("pass --force to replace it", "pass force=True to replace it"),
        ("or --no-check", "or check=False"),
        ("add --epochs N with N above 20.", "add epochs=N with N above 20."),
        ("Give one of --dataset NAME or --data DIR.", "Give one of dataset=NAME or data=DIR."),
        ("raise them (e.g. --test-split 0.2).", "raise them (e.g. test_split=0.2)."),
        (
            "--scale-lr does not apply to --lr auto: the",
            "scale_lr=True does not apply to lr='auto': the",
        ),
        ("give --lr a number; --epochs 0 is", "give lr a number; epochs=0 is"),
        ("rerun the same command once online", "rerun the same call once online"),
        (
            "agrees on 40%, below --min-agreement 99.00%;",
            "agrees on 40%, below min_agreement 99.00%;",
        ),
        ("with --epochs 5.", "with epochs=5."),
        (
            "Score it: `imgcls evaluate --model 'my runs/x' --data DIR`.",
            "Score it: `api.evaluate(model='my runs/x', data=DIR)`.",
        ),
        ("`imgcls lr-find --output DIR --steps 50`", "`api.lr_find(output=DIR, steps=50)`"),
        ("`imgcls evaluate --split train --tta`", "`api.evaluate(split='train', tta=True)`"),
        ("`imgcls train`", "`api.train()`"),
        # A positional argument has no keyword: the command stays as it is.
        ("`imgcls predict img.jpg --model r`", "`imgcls predict img.jpg --model r`"),
        ("`imgcls evaluate --model`", "`imgcls evaluate --model`"),
        ("`make demo --force`", "`make demo --force`"),
    ],
)
def test_messages_from_python_spell_flags_and_commands_as_the_api(message, python):
    assert python_spelling(message) == python
