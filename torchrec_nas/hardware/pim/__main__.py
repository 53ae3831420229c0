"""``python -m torchrec_nas.hardware.pim``: times the cost model on a NASRec-Full-sized model."""

from torchrec_nas.hardware.pim.benchmark import benchmark_estimator

if __name__ == "__main__":
    print(benchmark_estimator())
