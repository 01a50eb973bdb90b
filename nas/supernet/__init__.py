"""The weight-sharing tracking supernet, subnet extraction and BN recalibration."""
from nas.supernet.bn import recalibrate_bn
from nas.supernet.supernet import Supernet

__all__ = ["Supernet", "recalibrate_bn"]
