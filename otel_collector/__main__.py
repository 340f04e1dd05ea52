from otel_collector.cli import main

if __name__ == "__main__":
    main()
