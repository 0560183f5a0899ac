"""``tinymask course init | list | check``: the course from the command line."""

from __future__ import annotations

from tinymask.course.check import (
    TaskCheckError,
    course_root,
    format_results,
    run_task_tests,
    save_results,
    source_status,
)
from tinymask.course.student_copy import init
from tinymask.course.tasks import TASKS, get_task


def _init(args) -> int:
    blocks = init(args.dir)
    print(f"wrote a student copy to {args.dir}: {len({b.task_id for b in blocks})} tasks "
          f"({len(blocks)} blocks) to write")
    print(f"next: pip install -e \"{args.dir}[test]\", then tinymask course list")
    return 0


def _list(args) -> int:
    root = course_root()
    states = source_status(root)
    print(f"the course in {root}")
    print(f"{'task':5s} {'status':12s} {'lesson':30s} {'needs':9s} title, where")
    for task in TASKS:
        needs = ", ".join(task.needs) or "-"
        print(f"{task.id:5s} {states[task.id]:12s} {task.lesson:30s} {needs:9s} "
              f"{task.title}  ({task.where})")
    return 0


def _check(args) -> int:
    root = course_root()
    task_ids = args.tasks or [task.id for task in TASKS]
    for task_id in task_ids:
        get_task(task_id)  # an unknown id is refused before anything runs
    results = run_task_tests(task_ids, root)
    save_results(root, results)
    print(format_results(results))
    passed = sum(result.status == "passed" for result in results.values())
    print(f"{passed} of {len(results)} passed")
    return 0 if passed == len(results) else 1


def add_parser(commands) -> None:
    course = commands.add_parser("course", help="the course: write the model yourself")
    actions = course.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = actions.add_parser("init", help="write a student copy (every task a stub)")
    make.add_argument("dir", help="a new or empty folder")
    make.set_defaults(run=_init)
    listing = actions.add_parser("list", help="the tasks, their lessons and status")
    listing.set_defaults(run=_list)
    check = actions.add_parser("check", help="run the tests of some tasks (all by default)")
    check.add_argument("tasks", nargs="*", metavar="TASK", help="task ids such as 4.2")
    check.set_defaults(run=_check)


__all__ = ["TaskCheckError", "add_parser"]
