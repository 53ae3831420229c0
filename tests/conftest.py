import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
# One intra-op thread: tests measure behaviour, not threading, and a loaded 2-core machine
# runs them far faster without oversubscription.
torch.set_num_threads(1)
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
