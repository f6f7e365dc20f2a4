"""Training-loop settings read by ``ddod.engine.Trainer`` and ``train_net.py`` (the ``train`` key).

Use with ``from ..common.train import train`` and override single keys, in the config or on the
command line (``train.max_iter=20 train.device=cpu``).
"""

train = dict(
    output_dir="./output",
    # Weights to start from: a .pth written by this project or a detectron2 .pkl. "" = none.
    # (yacs: MODEL.WEIGHTS)
    init_checkpoint="",
    # 1x schedule: 90k iterations at 16 images per batch, about 12 COCO epochs (118k images).
    max_iter=90000,
    # On a GPU: float16 autocast + grad scaler (detectron2's AMPTrainer). On a CPU: bfloat16
    # autocast (ddod.engine.CPUAutocastTrainer) where the CPU runs bfloat16 natively, else
    # float32 with a warning (ddod.utils.cpu: emulated bfloat16 is 100x slower or worse).
    amp=dict(enabled=False),
    # Arguments of detectron2's create_ddp_model / DistributedDataParallel. DDOD all-reduces its
    # own statistics buffers, so buffers need not be broadcast every step.
    ddp=dict(
        broadcast_buffers=False,
        find_unused_parameters=False,
        fp16_compression=False,
    ),
    checkpointer=dict(period=5000, max_to_keep=100),  # PeriodicCheckpointer; also model_final
    eval_period=5000,  # 0 = evaluate only at the end of training
    log_period=20,
    # The console log and metrics.json show losses as medians over this many iterations (as
    # detectron2 does); 1 = the raw value of each iteration.
    metrics_window=20,
    # "cuda" is detectron2's default; use train.device=cpu on a machine without a GPU.
    device="cuda",
    # Negative: a random seed (logged by default_setup), so repeated runs differ as in
    # detectron2. Set e.g. seed=42 for repeatable runs; each process adds its rank.
    seed=-1,
    cudnn_benchmark=False,
    # Keep the best model by a metric, e.g. dict(val_metric="bbox/AP", mode="max"); written to
    # model_best.pth by detectron2's BestCheckpointer. None = off.
    best_checkpointer=None,
)
