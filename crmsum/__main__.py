"""The `crmsum` command: `crmsum ask QUESTION [--json]` is handed to a resident answerer when one listens
on this data dir (the bot, or `crmsum serve`), before the command line interface is even imported;
everything else, and every question nobody resident answers, goes to `crmsum.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["ask"]:
        from crmsum.answer.resident import ask_argv
        from crmsum.paths import quick_data_dir

        output = ask_argv(sys.argv[2:], quick_data_dir() / "state")
        if output is not None:
            sys.stdout.write(output)
            return
    from crmsum.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
