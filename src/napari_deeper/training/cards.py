"""Model cards: the Markdown written next to saved weights, one writer for every trained model.

:func:`model_card_markdown` lays every card out the same way: the model's name, what it is and
does, its facts (architecture, configuration, version), how it was trained, with the earlier runs
it continued from, and what was measured. The training command lines (``training.denoise``,
``training.superres``) and fine-tuning (``training.finetune``) only say what goes in each part.
"""

from __future__ import annotations


def earlier_runs(training: dict) -> list[tuple[str, dict]]:
    """``(weights, training record)`` of every run a card's training continued, latest first."""
    runs = []
    while training.get("initialised_from"):
        weights, training = training["initialised_from"]["weights"], training["initialised_from"]["training"]
        runs.append((weights, training))
    return runs


def _minutes(training: dict, *keys: str) -> float:
    """Wall time in minutes of a training record (the first of ``keys`` it holds, in seconds)."""
    return next((float(training[key]) for key in keys if key in training), 0.0) / 60


def _continued(training: dict) -> list[str]:
    """The lines naming the runs a training continued from (none when trained from scratch)."""
    runs = earlier_runs(training)
    if not runs:
        return []
    lines = ["", "Continued from these earlier runs, latest first:", ""]
    for weights, run in runs:
        steps = f"{run['steps']} steps, " if "steps" in run else ""
        lines.append(f"- `{weights}`: `{run.get('command', '?')}` "
                     f"({steps}{_minutes(run, 'wall_time_s', 'seconds'):.1f} min)")
    total = _minutes(training, "total_wall_time_s", "total_seconds")
    return [*lines, "", f"Total wall time of all runs: {total:.1f} min."]


def _body(part) -> list[str]:
    """A part of the card: a block of text as it is, or a list of bullet points."""
    return [part.strip()] if isinstance(part, str) else [f"- {line}" for line in part]


def model_card_markdown(name: str, card: dict, about: str, facts=(), training=(), measured="") -> str:
    """The Markdown card of the model ``name`` whose JSON card is ``card``.

    ``about`` says what the network is and does (text); ``facts`` (architecture, configuration,
    version, inputs), ``training`` (data, schedule, command) and ``measured`` (what it scores) are
    each a text block or a list of bullet points. The runs the training continued from are
    listed from ``card["training"]``; an empty part leaves its section out.
    """
    lines = [f"# {name}", "", about.strip()]
    if facts:
        lines += ["", *_body(facts)]
    continued = _continued(card.get("training") or {})
    if training or continued:
        lines += ["", "## Training", ""]
        lines += _body(training) if training else []
        lines += continued[1:] if not training else continued
    if measured:
        lines += ["", "## Measured quality", "", *_body(measured)]
    return "\n".join(lines) + "\n"
