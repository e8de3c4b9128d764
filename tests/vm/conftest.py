"""Make the VM lab modules (vmlab, vmlab_image) importable whatever pytest's import mode."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
