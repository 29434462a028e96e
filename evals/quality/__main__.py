from evals.quality.cli import main

raise SystemExit(main())
