#include "tide/policy/decider.h"
