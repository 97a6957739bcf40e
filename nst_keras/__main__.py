from nst_keras.cli import main
raise SystemExit(main())
