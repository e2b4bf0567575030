"""The platform: the one plugin loader (:mod:`.registry`), run configs (:mod:`.config`), run
directories and sampling from them (:mod:`.runs`), Lightning training (:mod:`.training`), the
schedule view (:mod:`.schedview`) and the command line (:mod:`.cli`). It imports everything
below it (the mathematics, the building blocks, the contract); nothing below imports it.
Import the submodules you need: this package imports none of them up front, so that
``diffcore --help`` stays quick."""
