"""workbench: reads run folders and serves them (classify, explain, run data, the app, the API, the CLI).

What the pages need from the model layer is re-exported here, so pages import only workbench:
class names, image size, the test split's size, the prediction table's columns, the default run,
the run list and the project's errors.
"""

from model.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES, TEST_IMAGES
from model.errors import DataError, ExplainError, ExportError, ImageError, RunError, WorkbenchError
from model.runs import DEFAULT_RUN_ID, PROB_COLUMNS, list_runs

__all__ = ["CLASS_NAMES", "IMAGE_SIZE", "NUM_CLASSES", "TEST_IMAGES", "DataError", "ExplainError", "ExportError",
           "ImageError", "RunError", "WorkbenchError", "DEFAULT_RUN_ID", "PROB_COLUMNS", "list_runs"]
