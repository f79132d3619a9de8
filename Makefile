# All set-up happens here, so a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
SHARED_DATA := ../shared/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Debian packages the Python wheels need at run time: libusb for open3d, espeak-ng and flite for the offline
# spoken-digit fallback, ffmpeg for writing mp4 test media, chromium + its driver for the search page's browser test,
# fontconfig + print and handwriting font packages for the OmniDigits digits rendered from fonts (a source of
# their own; the handwriting fonts bring it closer to scanned hands).
DEB_PACKAGES := libusb-1.0-0 espeak-ng flite ffmpeg chromium chromium-driver \
	fontconfig fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-noto-core \
	fonts-dkg-handwriting fonts-bwht fonts-humor-sans fonts-comic-neue fonts-breip fonts-femkeklaver \
	fonts-ecolier-court fonts-kristi fonts-dancingscript fonts-kaushanscript

.PHONY: setup system-deps test test-fast demo bench clean

setup: system-deps $(STAMP)

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing -- install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

# every extra, at the exact versions CI tests (pyproject.toml holds the ranges a user's install may take)
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[all,test]'
	touch $(STAMP)

# MNIST + FSDD from $(SHARED_DATA) when it is there, else the offline sources
demo: setup
	$(VENV)/bin/omniembed demo --out omnidigits-demo --shared-root $(SHARED_DATA)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m 'not notebook and not slow and not bench'

bench: setup
	$(PY) -m pytest -q -m bench -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
