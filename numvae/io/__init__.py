"""Files and data: ``files`` (atomic writes, regular files only), ``idx`` (MNIST's format),
``npz`` (a bounded reader that never unpickles) and ``datasets`` (MNIST, the embedded
subset, a toy set). The bottom floor: nothing here imports the model."""
