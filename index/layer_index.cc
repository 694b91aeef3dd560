#include "index/layer_index.h"
