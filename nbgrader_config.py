"""nbgrader configuration of the course (`nbgrader generate_assignment notebooks`, ...).

The instructor notebooks are the assignment `notebooks` (source_directory "." below), so nbgrader
finds them at ./notebooks/*.ipynb; student versions, submissions, grades and feedback go under
assignments/ (git-ignored). `make assignments` uses nbgrader's preprocessors directly and needs
no course database; this file is for running nbgrader itself (see course/grading.md).
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))  # the repository
c.CourseDirectory.source_directory = "."
c.CourseDirectory.release_directory = "assignments/release"
c.CourseDirectory.submitted_directory = "assignments/submitted"
c.CourseDirectory.autograded_directory = "assignments/autograded"
c.CourseDirectory.feedback_directory = "assignments/feedback"
c.CourseDirectory.notebook_id = "0[0-5]_*"  # 06 (the live demo) is not an assignment
c.CourseDirectory.db_url = "sqlite:///gradebook.db"  # git-ignored

# Lesson cells are read-only in the student version; solutions become stubs.
c.LockCells.lock_all_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Per-cell timeout: notebook 00 fits the model on first use (about a minute on a laptop, several
# on a loaded 2-core machine); patchcore_lite.teaching.assignments.TIMEOUT_S is the same.
c.ExecutePreprocessor.timeout = 600
c.Execute.timeout = 600
