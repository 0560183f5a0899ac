"""The course: a student writes pieces of Mask R-CNN in the very code the model runs.

    tinymask course init DIR     a copy of the repository with every task a stub
    tinymask course list         the tasks in lesson order, with their status
    tinymask course check 6.2    run one task's tests (all tasks without an argument)

Read in this order:
    tasks.py          the task table: id, title, lesson, where it lives, what it needs
    blocks.py         the marked solution blocks in the package and the stubs replacing them
    student_copy.py   ``course init``
    check.py          ``course check`` and the lessons' exercise checks
"""

from tinymask.course.check import TaskCheckError, check_tasks
from tinymask.course.tasks import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "TaskCheckError", "check_tasks", "get_task"]
