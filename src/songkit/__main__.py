from songkit.cli import main

main()
