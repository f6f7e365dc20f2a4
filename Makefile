# The two commands of the README. Both create the project-local environment (.venv) on first use
# (dev/setup_env.sh) and reuse it afterwards.
PYTHON := .venv/bin/python
QUICKSTART_CONFIG := configs/quickstart/ddod_digits_cpu.py
QUICKSTART_OUTPUT := output/quickstart_ddod_digits

.PHONY: env quickstart test

env:
	@bash dev/setup_env.sh

# Train a small DDOD on the built-in digits dataset on the CPU, evaluate it (COCO AP), and save
# pictures under $(QUICKSTART_OUTPUT): predictions/ (ground truth vs detections), assignments/
# (which anchors train classification and regression, per FPN level) and curves.png.
quickstart: env
	$(PYTHON) train_net.py --config-file $(QUICKSTART_CONFIG) train.output_dir=$(QUICKSTART_OUTPUT)
	$(PYTHON) tools/visualize_predictions.py --config-file $(QUICKSTART_CONFIG) \
		--score-thresh 0.2 train.output_dir=$(QUICKSTART_OUTPUT) train.init_checkpoint=$(QUICKSTART_OUTPUT)/model_final.pth
	$(PYTHON) tools/visualize_assignments.py --config-file $(QUICKSTART_CONFIG) --images 2 \
		train.output_dir=$(QUICKSTART_OUTPUT) train.init_checkpoint=$(QUICKSTART_OUTPUT)/model_final.pth
	$(PYTHON) tools/plot_metrics.py $(QUICKSTART_OUTPUT)

test: env
	$(PYTHON) -m pytest tests
