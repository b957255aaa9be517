import PSICEngine
