from nst_keras.commands.cli import main
raise SystemExit(main())
