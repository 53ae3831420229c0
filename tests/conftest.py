import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
